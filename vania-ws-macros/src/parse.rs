//! Parsing: the attribute arguments and the impl block into a model. No checks beyond syntax.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, ImplItem, ImplItemFn, ItemImpl, LitStr, Path, ReturnType, Token, Type,
};

/// `#[ws_controller("/path", guard = method, crate = "path")]`.
pub(crate) struct ControllerArgs {
    pub(crate) path: Option<LitStr>,
    pub(crate) krate: Option<Path>,
    /// The method of the impl block that guards the route's handshake.
    pub(crate) guard: Option<syn::Ident>,
    /// Where to report a missing path.
    pub(crate) span: Span,
}

impl Parse for ControllerArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let span = input.span();
        if input.is_empty() {
            return Ok(Self {
                path: None,
                krate: None,
                guard: None,
                span,
            });
        }
        let path = if input.peek(LitStr) {
            Some(input.parse::<LitStr>()?)
        } else if input.peek(Token![crate]) {
            None
        } else {
            return Err(input.error(
                "`#[ws_controller]` takes the route path as a string literal: `#[ws_controller(\"/admins\")]`",
            ));
        };
        let mut krate = None;
        let mut guard = None;
        let mut first = path.is_none();
        while !input.is_empty() {
            if !first {
                input.parse::<Token![,]>()?;
                if input.is_empty() {
                    break;
                }
            }
            first = false;
            if input.peek(Token![crate]) {
                input.parse::<Token![crate]>()?;
                input.parse::<Token![=]>()?;
                let value: LitStr = input.parse()?;
                krate = Some(value.parse::<Path>().map_err(|err| {
                    syn::Error::new(value.span(), format!("`crate` must name a path: {err}"))
                })?);
            } else if input.peek(syn::Ident) && input.fork().parse::<syn::Ident>()? == "guard" {
                let option = input.parse::<syn::Ident>()?;
                if guard.is_some() {
                    return Err(syn::Error::new(
                        option.span(),
                        "`guard` is given twice: a controller has one guard method (it can call others)",
                    ));
                }
                input.parse::<Token![=]>()?;
                guard = Some(input.parse::<syn::Ident>().map_err(|err| {
                    syn::Error::new(
                        err.span(),
                        "`guard` names a method of this impl block: `guard = authorize`",
                    )
                })?);
            } else {
                return Err(input.error(
                    "the options of `#[ws_controller]` are `guard = method` and `crate = \"path::to::vania_ws\"`",
                ));
            }
        }
        Ok(Self {
            path,
            krate,
            guard,
            span,
        })
    }
}

/// What `#[on(…)]` held.
pub(crate) enum EventName {
    /// A string literal.
    Literal(LitStr),
    /// Anything else (an error, reported by validation).
    Invalid(syn::Error),
}

/// How a handler takes `self`.
pub(crate) enum ReceiverKind {
    /// No receiver: an associated function.
    None,
    /// `&self`.
    Shared,
    /// `self`, `mut self`, `&mut self`, `self: Box<Self>`…: an error.
    Other(Span),
}

/// One handler argument after the receiver.
pub(crate) struct Arg {
    pub(crate) ty: Type,
    /// `Some(inner)` for a reference type `&inner`.
    pub(crate) by_ref: Option<Type>,
}

/// One `#[on]` method.
pub(crate) struct Handler {
    /// Index of the method among the impl's items.
    pub(crate) item_index: usize,
    pub(crate) event: EventName,
    /// More `#[on]` attributes on the same method.
    pub(crate) extra_attrs: Vec<Span>,
    pub(crate) receiver: ReceiverKind,
    pub(crate) args: Vec<Arg>,
    pub(crate) output: ReturnType,
}

/// The controller model.
pub(crate) struct Controller {
    pub(crate) args: ControllerArgs,
    pub(crate) item: ItemImpl,
    pub(crate) handlers: Vec<Handler>,
}

/// Whether an attribute is `#[on(…)]` (or a path ending in `on`).
pub(crate) fn is_on_attr(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|seg| seg.ident == "on")
}

pub(crate) fn controller(args: ControllerArgs, item: ItemImpl) -> Controller {
    let mut handlers = Vec::new();
    for (item_index, impl_item) in item.items.iter().enumerate() {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let mut on_attrs = method.attrs.iter().filter(|attr| is_on_attr(attr));
        let Some(first) = on_attrs.next() else {
            continue;
        };
        let extra_attrs = on_attrs.map(Spanned::span).collect();
        handlers.push(handler(item_index, method, first, extra_attrs));
    }
    Controller {
        args,
        item,
        handlers,
    }
}

fn handler(
    item_index: usize,
    method: &ImplItemFn,
    attr: &Attribute,
    extra_attrs: Vec<Span>,
) -> Handler {
    let event = match attr.parse_args::<LitStr>() {
        Ok(lit) => EventName::Literal(lit),
        Err(_) => EventName::Invalid(syn::Error::new(
            attr.span(),
            "`#[on]` takes the event name as a string literal: `#[on(\"message\")]`",
        )),
    };
    let mut receiver = ReceiverKind::None;
    let mut args = Vec::new();
    for input in &method.sig.inputs {
        match input {
            FnArg::Receiver(recv) => {
                let shared = recv.reference.is_some()
                    && recv.mutability.is_none()
                    && recv.colon_token.is_none();
                receiver = if shared {
                    ReceiverKind::Shared
                } else {
                    ReceiverKind::Other(recv.span())
                };
            }
            FnArg::Typed(pat) => {
                let by_ref = match &*pat.ty {
                    Type::Reference(reference) => Some((*reference.elem).clone()),
                    _ => None,
                };
                args.push(Arg {
                    ty: (*pat.ty).clone(),
                    by_ref,
                });
            }
        }
    }
    Handler {
        item_index,
        event,
        extra_attrs,
        receiver,
        args,
        output: method.sig.output.clone(),
    }
}
