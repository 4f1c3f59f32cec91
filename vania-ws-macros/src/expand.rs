//! Expansion: the code for a valid controller. Never re-validates.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ImplItem, ReturnType, Type};

use crate::parse::{Controller, EventName, Handler, ReceiverKind};

/// The `impl Controller`, one erased handler per `#[on]` method, and the registry record.
pub(crate) fn controller(model: &Controller) -> TokenStream {
    let krate = match &model.args.krate {
        Some(path) => quote!(#path),
        None => quote!(::vania_ws_server),
    };
    let self_ty = &model.item.self_ty;
    let path = model
        .args
        .path
        .as_ref()
        .expect("validated: the path is present");
    let type_line = model.item.impl_token.span.start().line;

    let mut routes = Vec::new();
    let mut handlers = Vec::new();
    for (index, handler) in model.handlers.iter().enumerate() {
        let ImplItem::Fn(method) = &model.item.items[handler.item_index] else {
            unreachable!("handlers are methods");
        };
        let EventName::Literal(event) = &handler.event else {
            unreachable!("validated: the event is a literal");
        };
        let name = format_ident!("__VaniaWsHandler{}", index);
        let line = method.sig.ident.span().start().line;
        routes.push(quote! {
            __vws::ControllerRoute {
                event: #event,
                handler: __vws::Arc::new(#name(__vws::Arc::clone(&self))),
                location: ::core::concat!(::core::file!(), ":", #line),
            }
        });
        handlers.push(erased_handler(&name, self_ty, &method.sig.ident, handler));
    }

    quote! {
        const _: () = {
            use #krate::__private as __vws;

            impl __vws::Controller for #self_ty {
                const PATH: &'static str = #path;

                fn routes(self: __vws::Arc<Self>) -> __vws::Vec<__vws::ControllerRoute> {
                    __vws::Vec::from([#(#routes),*])
                }
            }

            #(#handlers)*

            fn __vania_ws_default_routes()
                -> __vws::Option<__vws::Vec<__vws::ControllerRoute>>
            {
                #[allow(unused_imports)]
                use __vws::{NoDefault as _, ViaDefault as _};
                (&__vws::DefaultProbe::<#self_ty>(__vws::PhantomData)).default_routes()
            }

            __vws::inventory::submit! {
                __vws::ControllerRecord {
                    type_name: ::core::stringify!(#self_ty),
                    path: #path,
                    location: ::core::concat!(::core::file!(), ":", #type_line),
                    type_id: __vws::type_id_of::<#self_ty>,
                    default_routes: __vania_ws_default_routes,
                }
            }
        };
    }
}

fn erased_handler(
    name: &syn::Ident,
    self_ty: &Type,
    method: &syn::Ident,
    handler: &Handler,
) -> TokenStream {
    let mut extract = Vec::new();
    let mut call_args = Vec::new();
    for (i, arg) in handler.args.iter().enumerate() {
        let var = format_ident!("__arg{}", i);
        match &arg.by_ref {
            Some(inner) => {
                let span = arg.ty.span();
                call_args.push(quote_spanned! {span=>
                    <#inner as __vws::ClientRef>::client_ref(&__client)
                });
            }
            None => {
                let ty = &arg.ty;
                extract.push(quote_spanned! {ty.span()=>
                    let #var = <#ty as __vws::FromEvent>::from_event(&__client, __payload)?;
                });
                call_args.push(quote!(#var));
            }
        }
    }
    let call = match handler.receiver {
        ReceiverKind::Shared => quote_spanned! {method.span()=>
            __vws::require_send(__this.#method(#(#call_args),*))
        },
        ReceiverKind::None | ReceiverKind::Other(_) => quote_spanned! {method.span()=>
            __vws::require_send(<#self_ty>::#method(#(#call_args),*))
        },
    };
    let reply = match &handler.output {
        ReturnType::Default => quote! { __vws::reply_value(__out, __want_reply) },
        ReturnType::Type(_, ty) => match result_name(ty) {
            ResultName::Exact => quote_spanned! {ty.span()=>
                __vws::reply_result(__out, __want_reply)
            },
            ResultName::Suffix => quote_spanned! {ty.span()=>
                {
                    #[allow(unused_imports)]
                    use __vws::{ReplyViaResult as _, ReplyViaSerialize as _};
                    (&__vws::ReplyProbe(__out)).to_outcome(__want_reply)
                }
            },
            ResultName::Other => quote_spanned! {ty.span()=>
                __vws::reply_value(__out, __want_reply)
            },
        },
    };
    let keep_this = match handler.receiver {
        ReceiverKind::Shared => quote!(let __this = __vws::Arc::clone(&self.0);),
        _ => quote!(),
    };
    let span = Span::call_site();
    quote_spanned! {span=>
        #[allow(non_camel_case_types)]
        struct #name(__vws::Arc<#self_ty>);

        impl __vws::ErasedHandler for #name {
            fn call(
                &self,
                __client: __vws::Client,
                __payload: __vws::Option<&__vws::RawValue>,
                __want_reply: bool,
            ) -> __vws::Result<__vws::BoxFuture<__vws::Outcome>, __vws::DispatchError> {
                #(#extract)*
                #keep_this
                __vws::Result::Ok(__vws::Box::pin(async move {
                    let __out = #call.await;
                    #reply
                }))
            }
        }
    }
}

/// What a return type's name says about it being a `Result`.
enum ResultName {
    /// `Result<…>` or `path::Result<…>`: a `Result` (errors then speak of `Result`).
    Exact,
    /// A name ending in `Result` (`AppResult<T>`, `SearchResult`): decided by type.
    Suffix,
    /// Anything else: a `Serialize` reply.
    Other,
}

fn result_name(ty: &Type) -> ResultName {
    match ty {
        Type::Path(path) => match path.path.segments.last() {
            Some(segment) if segment.ident == "Result" => ResultName::Exact,
            Some(segment) if segment.ident.to_string().ends_with("Result") => ResultName::Suffix,
            _ => ResultName::Other,
        },
        Type::Paren(inner) => result_name(&inner.elem),
        Type::Group(inner) => result_name(&inner.elem),
        _ => ResultName::Other,
    }
}
