//! `#[derive(Differentiable)]`: makes a struct generic over its scalar usable as an argument
//! and result of differentiated functions, with a tangent of the same type.
//!
//! The struct must have exactly one type parameter, the scalar, and named fields whose types are
//! themselves differentiable over it (`T`, `Vec<T>`, `[T; N]`, ndarray arrays, other derived
//! structs). The derive implements `difi::Differentiable` for `Name<S>` and `&Name<S>`, and
//! `difi::Output<T>` for `Name<T>`.
//!
//! The generated code names the interface crate as `::difi` by default (the facade users depend on)
//! through `difi::Differentiable`; crates that depend on `difi-core` directly write
//! `#[difi(crate = "difi_core")]`.

extern crate proc_macro;

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, Data, DeriveInput, Fields, GenericParam};

/// Derives `Differentiable` and `Output` for a struct generic over one scalar type.
#[proc_macro_derive(Differentiable, attributes(difi))]
pub fn derive_differentiable(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn crate_path(input: &DeriveInput) -> syn::Result<syn::Path> {
    let mut path: syn::Path = syn::parse_quote!(::difi);
    for attr in &input.attrs {
        if attr.path().is_ident("difi") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("crate") {
                    let s: syn::LitStr = meta.value()?.parse()?;
                    path = s.parse()?;
                    Ok(())
                } else {
                    Err(meta.error("expected `crate = \"path\"`"))
                }
            })?;
        }
    }
    Ok(path)
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let krate = crate_path(input)?;
    let name = &input.ident;
    let name_str = name.to_string();
    let type_params: Vec<_> = input
        .generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => Some(t.ident.clone()),
            _ => None,
        })
        .collect();
    if type_params.len() != 1 || input.generics.params.len() != 1 {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "#[derive(Differentiable)] needs exactly one generic parameter, the scalar type: \
             `struct Name<T> { ... }`",
        ));
    }
    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(f) => f
                .named
                .iter()
                .map(|f| f.ident.clone().unwrap())
                .collect::<Vec<_>>(),
            _ => {
                return Err(syn::Error::new_spanned(
                    name,
                    "#[derive(Differentiable)] supports structs with named fields",
                ))
            }
        },
        _ => {
            return Err(syn::Error::new_spanned(
                name,
                "#[derive(Differentiable)] supports structs only",
            ))
        }
    };
    let field_strs: Vec<String> = fields.iter().map(|f| f.to_string()).collect();

    Ok(quote! {
        impl<__S: #krate::Real> #krate::Differentiable for #name<__S> {
            type Scalar = __S;
            type Of<__T: #krate::Real> = #name<__T>;
            type Tangent = #name<__S>;

            fn shape(&self) -> #krate::Shape {
                #krate::Shape::Struct {
                    name: #name_str,
                    fields: vec![#( (#field_strs, #krate::Differentiable::shape(&self.#fields)) ),*],
                }
            }
            fn visit<__F: FnMut(__S) + ?Sized>(&self, f: &mut __F) {
                #( #krate::Differentiable::visit(&self.#fields, f); )*
            }
            fn map<__T: #krate::Real, __F: FnMut(__S) -> __T + ?Sized>(&self, f: &mut __F) -> #name<__T> {
                #name { #( #fields: #krate::Differentiable::map(&self.#fields, f), )* }
            }
            fn tangent_from<__G: FnMut() -> __S + ?Sized>(&self, next: &mut __G) -> #name<__S> {
                #name { #( #fields: #krate::Differentiable::tangent_from(&self.#fields, next), )* }
            }
            fn extend_scalars(&self, out: &mut ::std::vec::Vec<__S>) {
                #( #krate::Differentiable::extend_scalars(&self.#fields, out); )*
            }
            fn of_from_iter<__T: #krate::Real, __I: ::std::iter::Iterator<Item = __T>>(
                &self,
                src: &mut __I,
            ) -> #name<__T> {
                #name {
                    #( #fields: #krate::Differentiable::of_from_iter(&self.#fields, src), )*
                }
            }
            fn tangent_from_iter<__I: ::std::iter::Iterator<Item = __S>>(
                &self,
                src: &mut __I,
            ) -> #name<__S> {
                #name {
                    #( #fields: #krate::Differentiable::tangent_from_iter(&self.#fields, src), )*
                }
            }
        }

        impl<'__a, __S: #krate::Real> #krate::Differentiable for &'__a #name<__S> {
            type Scalar = __S;
            type Of<__T: #krate::Real> = #name<__T>;
            type Tangent = #name<__S>;

            fn shape(&self) -> #krate::Shape {
                #krate::Differentiable::shape(*self)
            }
            fn visit<__F: FnMut(__S) + ?Sized>(&self, f: &mut __F) {
                #krate::Differentiable::visit(*self, f)
            }
            fn map<__T: #krate::Real, __F: FnMut(__S) -> __T + ?Sized>(&self, f: &mut __F) -> #name<__T> {
                #krate::Differentiable::map(*self, f)
            }
            fn tangent_from<__G: FnMut() -> __S + ?Sized>(&self, next: &mut __G) -> #name<__S> {
                #krate::Differentiable::tangent_from(*self, next)
            }
            fn extend_scalars(&self, out: &mut ::std::vec::Vec<__S>) {
                #krate::Differentiable::extend_scalars(*self, out)
            }
            fn of_from_iter<__T: #krate::Real, __I: ::std::iter::Iterator<Item = __T>>(
                &self,
                src: &mut __I,
            ) -> #name<__T> {
                #krate::Differentiable::of_from_iter(*self, src)
            }
            fn tangent_from_iter<__I: ::std::iter::Iterator<Item = __S>>(
                &self,
                src: &mut __I,
            ) -> #name<__S> {
                #krate::Differentiable::tangent_from_iter(*self, src)
            }
        }

        impl<__T: #krate::Real> #krate::Output<__T> for #name<__T> {
            type Of<__U: #krate::Real> = #name<__U>;

            fn output_shape(&self) -> #krate::Shape {
                #krate::Shape::Struct {
                    name: #name_str,
                    fields: vec![#( (#field_strs, #krate::Output::<__T>::output_shape(&self.#fields)) ),*],
                }
            }
            fn visit_output<__F: FnMut(__T) + ?Sized>(&self, f: &mut __F) {
                #( #krate::Output::<__T>::visit_output(&self.#fields, f); )*
            }
            fn rebuild<__U: #krate::Real, __G: FnMut() -> __U + ?Sized>(&self, next: &mut __G) -> #name<__U> {
                #name { #( #fields: #krate::Output::<__T>::rebuild(&self.#fields, next), )* }
            }
        }
    })
}
