//! One name per wire value: [`wire_enum!`] declares an enum whose variants are
//! strings on the wire, with each name written once. It derives serde with
//! that name as the rename, and adds `ALL`, `as_str`, `FromStr` and `Display`.

use std::str::FromStr;

/// A string that names no variant of a wire enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownName {
    /// What was named, e.g. `provider`.
    pub kind: &'static str,
    /// The name that was given.
    pub value: String,
}

/// What generic code (the JSON walk's `one_of`) needs of a wire enum.
pub(crate) trait Wire: FromStr<Err = UnknownName> {
    /// Every variant's name, in declaration order.
    const NAMES: &'static [&'static str];
}

/// Declares a wire enum: `pub enum Name("kind") { Variant = "wire-name", … }`.
///
/// Derives `Debug, Clone, Copy, PartialEq, Eq, Hash`, serde (each variant
/// renamed to its wire name) and, with the `ts` feature, `Tsify`; more
/// attributes (docs, other derives, `#[default]`) may be given.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident($kind:literal) {
            $( $(#[$variant_meta:meta])* $variant:ident = $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "ts", derive(tsify::Tsify))]
        pub enum $name {
            $( $(#[$variant_meta])* #[serde(rename = $wire)] $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [Self; <$name as $crate::names::Wire>::NAMES.len()] =
                [$(Self::$variant),+];

            /// The name on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)+
                }
            }
        }

        impl $crate::names::Wire for $name {
            const NAMES: &'static [&'static str] = &[$($wire),+];
        }

        impl std::str::FromStr for $name {
            type Err = $crate::names::UnknownName;

            /// The variant with exactly this wire name.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| $crate::names::UnknownName {
                        kind: $kind,
                        value: s.to_owned(),
                    })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use wire_enum;

/// Ties a wire enum's `as_str` to its serde form, `FromStr` and `Display`,
/// for every variant in `all` (its `ALL`).
#[cfg(test)]
pub(crate) fn assert_wire_names<T>(all: &[T], as_str: fn(T) -> &'static str)
where
    T: Wire + Copy + PartialEq + std::fmt::Display + std::fmt::Debug,
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let names: Vec<&str> = all.iter().map(|&v| as_str(v)).collect();
    assert_eq!(names, T::NAMES);
    for &value in all {
        let name = as_str(value);
        let json = format!("\"{name}\"");
        assert_eq!(serde_json::to_string(&value).unwrap(), json);
        assert_eq!(serde_json::from_str::<T>(&json).unwrap(), value);
        assert_eq!(name.parse::<T>(), Ok(value));
        assert_eq!(value.to_string(), name);
    }
    let unknown = "no such name".parse::<T>().unwrap_err();
    assert_eq!(unknown.value, "no such name");
    assert!(unknown.to_string().starts_with("unknown "), "{unknown}");
}
