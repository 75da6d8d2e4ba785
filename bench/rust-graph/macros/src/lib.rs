//! `#[derive(Describe)]`: a `describe()` listing the struct's field names (a small proc-macro for the bench).
use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, Data, DeriveInput, Fields};

#[proc_macro_derive(Describe)]
pub fn derive_describe(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let name = &input.ident;
    let fields: Vec<String> = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(f) => f.named.iter().filter_map(|f| f.ident.as_ref().map(|i| i.to_string())).collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    let type_name = name.to_string();
    quote! {
        impl #name {
            pub fn describe() -> String {
                format!("{} {{ {} }}", #type_name, [#(#fields),*].join(", "))
            }
        }
    }
    .into()
}
