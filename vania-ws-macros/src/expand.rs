//! Expansion: the code for a valid controller. Never re-validates.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ImplItem, ReturnType, Type};

use crate::parse::{Controller, EventName, Handler, ReceiverKind};

/// The path of the framework crate the caller depends on: the facade `vania-ws` if its
/// `Cargo.toml` names it (under any rename), else `vania-ws-server`. Generated code cannot use
/// `$crate` as `macro_rules!` can, so it is looked up in the manifest, as serde's and tokio's
/// users' renames are.
fn framework_crate() -> Result<TokenStream, String> {
    use proc_macro_crate::{FoundCrate, crate_name};
    for name in ["vania-ws", "vania-ws-server"] {
        match crate_name(name) {
            // The framework crate's own doctests and examples link it under its own name.
            Ok(FoundCrate::Itself) => {
                let ident = format_ident!("{}", name.replace('-', "_"));
                return Ok(quote!(::#ident));
            }
            Ok(FoundCrate::Name(found)) => {
                let ident = format_ident!("{}", found);
                return Ok(quote!(::#ident));
            }
            Err(_) => {}
        }
    }
    Err(
        "`#[ws_controller]` could not find `vania-ws` in this crate's Cargo.toml; add it to \
         [dependencies], or name the crate that re-exports it: \
         `#[ws_controller(\"/path\", crate = \"path::to::vania_ws\")]`"
            .to_owned(),
    )
}

/// The `impl Controller`, one erased handler per `#[on]` method, and the registry record.
pub(crate) fn controller(model: &Controller) -> TokenStream {
    let krate = match &model.args.krate {
        Some(path) => quote!(#path),
        None => match framework_crate() {
            Ok(path) => path,
            Err(message) => return syn::Error::new(Span::call_site(), message).to_compile_error(),
        },
    };
    let self_ty = &model.item.self_ty;
    let path = model
        .args
        .path
        .as_ref()
        .expect("validated: the path is present");
    let type_line = model.item.impl_token.span.start().line;
    // Spanned at the type, so `Send + Sync + 'static` errors point at it.
    let controller_trait =
        quote_spanned! {Span::call_site().located_at(self_ty.span())=> __vws::Controller};

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

    let guards = model.args.guard.as_ref().map(|guard| {
        let takes_self = model.item.items.iter().any(|item| {
            matches!(item, ImplItem::Fn(method) if method.sig.ident == *guard
                && matches!(method.sig.inputs.first(), Some(syn::FnArg::Receiver(_))))
        });
        // Spanned at `guard = …`, so a signature that does not fit is reported there.
        let call = if takes_self {
            quote_spanned! {Span::call_site().located_at(guard.span())=>
                __this.#guard(__request).await
            }
        } else {
            quote_spanned! {Span::call_site().located_at(guard.span())=>
                <#self_ty>::#guard(__request).await
            }
        };
        quote! {
            fn guards(self: &__vws::Arc<Self>) -> __vws::Vec<__vws::ConnectionGuard> {
                let __this = __vws::Arc::clone(self);
                __vws::Vec::from([__vws::connection_guard(move |__request| {
                    #[allow(unused_variables)]
                    let __this = __vws::Arc::clone(&__this);
                    async move { #call }
                })])
            }
        }
    });
    quote! {
        const _: () = {
            use #krate::__private as __vws;

            impl #controller_trait for #self_ty {
                const PATH: &'static str = #path;

                fn routes(self: __vws::Arc<Self>) -> __vws::Vec<__vws::ControllerRoute> {
                    __vws::Vec::from([#(#routes),*])
                }

                #guards
            }

            #(#handlers)*

            fn __vania_ws_default_routes() -> __vws::Option<__vws::ControllerParts> {
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
    // Generated locals keep call-site hygiene everywhere; expressions whose type checks should
    // point at the user's tokens get the user's *location* only (`at`), so a controller
    // written by a `macro_rules!` still resolves them.
    let at = |span: Span| Span::call_site().located_at(span);
    let local = |name: &str| syn::Ident::new(name, Span::call_site());
    let client = local("__client");
    let payload = local("__payload");
    let this = local("__this");
    let out = local("__out");
    let want_reply = local("__want_reply");

    let mut extract = Vec::new();
    let mut awaits = Vec::new();
    let mut call_args = Vec::new();
    let mut state_checks = Vec::new();
    let mut payload_checks = Vec::new();
    // The arguments before the one at hand that may read the payload: a second one would
    // fail every event with `invalid_payload`, so it is a compile error at that argument.
    let mut earlier: Vec<&syn::Type> = Vec::new();
    for (i, arg) in handler.args.iter().enumerate() {
        let var = format_ident!("__arg{}", i, span = Span::call_site());
        match &arg.by_ref {
            Some(inner) => {
                call_args.push(quote_spanned! {at(arg.ty.span())=>
                    <#inner as __vws::ClientRef>::client_ref(&#client)
                });
            }
            None => {
                let ty = &arg.ty;
                let from_event = quote_spanned! {at(ty.span())=>
                    <#ty as __vws::FromEvent>::from_event(&__client, __payload)
                };
                if !earlier.is_empty() {
                    extract.push(quote_spanned! {at(ty.span())=>
                        const {
                            __vws::assert!(
                                !(<#ty as __vws::FromEvent>::READS_PAYLOAD
                                    && (false #(|| <#earlier as __vws::FromEvent>::READS_PAYLOAD)*)),
                                "a handler takes at most one payload argument, and an earlier argument already reads the payload: put the fields in one struct that derives `Deserialize`"
                            )
                        };
                    });
                }
                earlier.push(ty);
                // An extraction that already failed refuses the event now; one that waits is
                // awaited inside the handler's future, before the method is called.
                extract.push(quote! {
                    let #var = match __vws::Extraction::now(#from_event) {
                        __vws::Result::Ok(result) => __vws::Result::Ok(result?),
                        __vws::Result::Err(waiting) => __vws::Result::Err(waiting),
                    };
                });
                awaits.push(quote! {
                    let #var = match #var {
                        __vws::Result::Ok(value) => value,
                        __vws::Result::Err(waiting) => waiting.await?,
                    };
                });
                state_checks.push(quote! {
                    <#ty as __vws::FromEvent>::required_state()
                });
                payload_checks.push(quote! {
                    <#ty as __vws::FromEvent>::READS_PAYLOAD
                });
                call_args.push(quote!(#var));
            }
        }
    }
    // Spanned at the method name, so "future is not `Send`" points there.
    let call = match handler.receiver {
        ReceiverKind::Shared => quote_spanned! {at(method.span())=>
            __vws::require_send(__this.#method(#(#call_args),*))
        },
        ReceiverKind::None | ReceiverKind::Other(_) => quote_spanned! {at(method.span())=>
            __vws::require_send(<#self_ty>::#method(#(#call_args),*))
        },
    };
    // By type, never by name: an alias such as `type Reply<T> = Result<T, String>` is a
    // `Result`, and a struct named `SearchResult` is not. Spanned at the return type, so a
    // reply that does not serialize is reported there.
    let reply = match &handler.output {
        ReturnType::Default => quote! { __vws::SerializeReply.reply(#out, #want_reply) },
        ReturnType::Type(_, ty) => {
            let kind = quote_spanned! {at(ty.span())=>
                (&__vws::ReplyProbe(&#out)).reply_kind()
            };
            // The value, too, is located at the return type: the unmet bound is reported
            // on the value passed, so this puts the error there.
            let value = syn::Ident::new("__out", at(ty.span()));
            let call = quote_spanned! {at(ty.span())=>
                __kind.reply(#value, #want_reply)
            };
            quote! {
                {
                    #[allow(unused_imports)]
                    use __vws::{ReplyViaResult as _, ReplyViaSerialize as _};
                    let __kind = #kind;
                    #call
                }
            }
        }
    };
    let keep_this = match handler.receiver {
        ReceiverKind::Shared => quote!(let #this = __vws::Arc::clone(&self.0);),
        _ => quote!(),
    };
    quote! {
        #[allow(non_camel_case_types)]
        struct #name(__vws::Arc<#self_ty>);

        impl __vws::ErasedHandler for #name {
            fn call(
                &self,
                #client: __vws::Client,
                #payload: __vws::Option<&__vws::RawValue>,
                #want_reply: bool,
            ) -> __vws::Result<__vws::BoxFuture<__vws::Outcome>, __vws::DispatchError> {
                #(#extract)*
                #keep_this
                __vws::Result::Ok(__vws::Box::pin(async move {
                    #(#awaits)*
                    let #out = #call.await;
                    #reply
                }))
            }

            fn required_state(&self) -> __vws::Vec<__vws::StateKey> {
                let keys: __vws::Vec<__vws::Option<__vws::StateKey>> =
                    __vws::Vec::from([#(#state_checks),*]);
                keys.into_iter().flatten().collect()
            }

            fn reads_payload(&self) -> bool {
                false #(|| #payload_checks)*
            }
        }
    }
}
