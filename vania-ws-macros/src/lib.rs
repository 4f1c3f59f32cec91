//! Procedural macros for vania-ws controllers: `#[ws_controller("/path")]` on an impl block and
//! `#[on("event")]` on its `async fn` handlers.
//!
//! Use them through the facade crate `vania-ws`, which re-exports them and documents them with examples.
//! The macro parses (`parse`), then validates (`validate`), then expands (`expand`); every
//! mistake is reported at once, on its tokens, and the impl block is always emitted again so
//! that an IDE keeps working.

mod expand;
mod parse;
mod validate;

use proc_macro::TokenStream;
use quote::ToTokens;
use syn::ImplItem;

/// Makes an impl block's `#[on("event")]` methods the handlers of a WebSocket route. See
/// `vania_ws::ws_controller` for the documentation.
#[proc_macro_attribute]
pub fn ws_controller(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = match syn::parse::<parse::ControllerArgs>(attr) {
        Ok(args) => args,
        Err(err) => {
            let stripped = strip_on_attrs(item_impl(&item));
            return with_errors(item, stripped, vec![err]);
        }
    };
    let Some(impl_block) = item_impl(&item) else {
        let err = syn::Error::new(
            proc_macro2::Span::call_site(),
            "`#[ws_controller]` goes on an impl block: `#[ws_controller(\"/admins\")] impl Admin { … }`",
        );
        return with_errors(item, None, vec![err]);
    };
    let model = parse::controller(args, impl_block);
    let errors = validate::controller(&model);
    let stripped = strip_on_attrs(Some(model.item.clone()));
    if !errors.is_empty() {
        return with_errors(item, stripped, errors);
    }
    let mut out = stripped.expect("an impl block").into_token_stream();
    out.extend(expand::controller(&model));
    out.into()
}

/// Marks a method of a `#[ws_controller]` impl block as the handler of an event. Alone, it is
/// an error: see `vania_ws::on`.
#[proc_macro_attribute]
pub fn on(attr: TokenStream, item: TokenStream) -> TokenStream {
    if attr.to_string() == INSIDE_CONTROLLER {
        return item;
    }
    let err = syn::Error::new(
        proc_macro2::Span::call_site(),
        "`#[on]` can only be used inside a `#[ws_controller]` impl block: add `#[ws_controller(\"/path\")]` to the impl",
    );
    let mut out: proc_macro2::TokenStream = item.into();
    out.extend(err.to_compile_error());
    out.into()
}

fn item_impl(item: &TokenStream) -> Option<syn::ItemImpl> {
    syn::parse::<syn::ItemImpl>(item.clone()).ok()
}

/// The marker `#[on]` gets once its controller has read it.
const INSIDE_CONTROLLER: &str = "__inside_ws_controller";

/// The impl block with each `#[on("event")]` turned into `#[on(__inside_ws_controller)]`: the
/// controller has read the event, and the attribute, still resolved through the user's import
/// (which so counts as used), now leaves its method as it is.
fn strip_on_attrs(item: Option<syn::ItemImpl>) -> Option<syn::ItemImpl> {
    let mut item = item?;
    let marker = syn::Ident::new(INSIDE_CONTROLLER, proc_macro2::Span::call_site());
    for impl_item in &mut item.items {
        if let ImplItem::Fn(method) = impl_item {
            for attr in &mut method.attrs {
                if parse::is_on_attr(attr) {
                    let path = attr.path().clone();
                    *attr = syn::parse_quote!(#[#path(#marker)]);
                }
            }
        }
    }
    Some(item)
}

/// The original item (stripped of `#[on]` where it parsed) followed by every error.
fn with_errors(
    original: TokenStream,
    stripped: Option<syn::ItemImpl>,
    errors: Vec<syn::Error>,
) -> TokenStream {
    let mut out = match stripped {
        Some(item) => item.into_token_stream(),
        None => original.into(),
    };
    for err in errors {
        out.extend(err.to_compile_error());
    }
    out.into()
}
