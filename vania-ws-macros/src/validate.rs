//! Validation: every mistake in the model, as errors on the exact tokens. Emits no code.

use std::collections::HashMap;
use syn::spanned::Spanned;
use syn::{ImplItem, Type};

use crate::parse::{Controller, EventName, ReceiverKind};

/// Events the framework answers itself (`ack` answers a server's request, PROTOCOL.md
/// section 4). Kept equal to `vania_ws_core::RESERVED_EVENTS`.
const RESERVED: [&str; 3] = ["join-room", "left-room", "ack"];

/// Every error in the controller, in source order; empty when it is valid.
pub(crate) fn controller(model: &Controller) -> Vec<syn::Error> {
    let mut errors = Vec::new();
    match &model.args.path {
        None => errors.push(syn::Error::new(
            model.args.span,
            "`#[ws_controller]` needs the route path: write `#[ws_controller(\"/admins\")]`",
        )),
        Some(path) if !path.value().starts_with('/') => errors.push(syn::Error::new(
            path.span(),
            format!("route paths start with `/`: write `\"/{}\"`", path.value()),
        )),
        Some(_) => {}
    }
    let item = &model.item;
    if let Some((_, trait_path, _)) = &item.trait_ {
        errors.push(syn::Error::new(
            trait_path.span(),
            "`#[ws_controller]` goes on an inherent impl block (`impl Admin { … }`), not a trait impl",
        ));
    }
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        errors.push(syn::Error::new(
            item.generics.span(),
            "a `#[ws_controller]` cannot be generic: use a concrete type",
        ));
    }
    if let Type::Reference(_) = &*item.self_ty {
        errors.push(syn::Error::new(
            item.self_ty.span(),
            "`#[ws_controller]` goes on `impl Type { … }` for a named type",
        ));
    }
    let mut seen: HashMap<String, proc_macro2::Span> = HashMap::new();
    for handler in &model.handlers {
        let ImplItem::Fn(method) = &item.items[handler.item_index] else {
            continue;
        };
        let sig = &method.sig;
        match &handler.event {
            EventName::Invalid(err) => errors.push(err.clone()),
            EventName::Literal(lit) => {
                let name = lit.value();
                if name.is_empty() {
                    errors.push(syn::Error::new(
                        lit.span(),
                        "event names cannot be empty: write `#[on(\"message\")]`",
                    ));
                } else if RESERVED.contains(&name.as_str()) {
                    errors.push(syn::Error::new(
                        lit.span(),
                        format!("`{name}` is handled by the framework: pick another event name"),
                    ));
                } else if let Some(first) = seen.get(&name) {
                    let mut err = syn::Error::new(
                        lit.span(),
                        format!(
                            "event `{name}` is handled twice in this controller: keep one handler"
                        ),
                    );
                    err.combine(syn::Error::new(
                        *first,
                        format!("the first handler of `{name}` is here"),
                    ));
                    errors.push(err);
                } else {
                    seen.insert(name, lit.span());
                }
            }
        }
        for extra in &handler.extra_attrs {
            errors.push(syn::Error::new(
                *extra,
                "a method takes one `#[on]`: write a second method for the second event",
            ));
        }
        if sig.asyncness.is_none() {
            errors.push(syn::Error::new(
                sig.fn_token.span(),
                "`#[on]` handlers must be `async fn`",
            ));
        }
        if let ReceiverKind::Other(span) = handler.receiver {
            errors.push(syn::Error::new(
                span,
                "`#[on]` handlers take `&self`: write `&self` (keep mutable state behind a lock)",
            ));
        }
        if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
            errors.push(syn::Error::new(
                sig.generics.span(),
                "`#[on]` handlers cannot be generic: use concrete argument types",
            ));
        }
        if let Some(variadic) = &sig.variadic {
            errors.push(syn::Error::new(
                variadic.span(),
                "`#[on]` handlers cannot be variadic",
            ));
        }
    }
    if let Some(guard) = &model.args.guard {
        errors.extend(guard_method(model, guard));
    }
    errors
}

/// `guard = name` names an `async fn` of this impl block that is not a handler.
fn guard_method(model: &Controller, guard: &syn::Ident) -> Option<syn::Error> {
    const SHAPE: &str =
        "`async fn authorize(&self, request: Handshake) -> Result<Handshake, Rejection>`";
    let found = model
        .item
        .items
        .iter()
        .enumerate()
        .find_map(|(index, item)| match item {
            ImplItem::Fn(method) if method.sig.ident == *guard => Some((index, method)),
            _ => None,
        });
    let Some((index, method)) = found else {
        return Some(syn::Error::new(
            guard.span(),
            format!(
                "no method `{guard}` in this impl block: the guard is a method of the controller, {SHAPE}"
            ),
        ));
    };
    if model
        .handlers
        .iter()
        .any(|handler| handler.item_index == index)
    {
        return Some(syn::Error::new(
            guard.span(),
            format!("`{guard}` is an `#[on]` handler; the guard is a method of its own, {SHAPE}"),
        ));
    }
    if method.sig.asyncness.is_none() {
        return Some(syn::Error::new(
            method.sig.fn_token.span(),
            format!("the guard must be `async fn`: {SHAPE}"),
        ));
    }
    None
}
