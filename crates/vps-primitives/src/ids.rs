//! Random ids that mngr generates itself: `host-<32 hex>` and `agent-<32 hex>`.

use serde::{Deserialize, Serialize};

use crate::InvalidValue;

macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The fixed prefix of every id of this kind.
            pub const PREFIX: &'static str = $prefix;

            /// A new random id (128 random bits, shown as 32 lowercase hex digits).
            pub fn generate() -> Self {
                let bits: u128 = rand::random();
                Self(format!("{}{bits:032x}", Self::PREFIX))
            }

            /// Parses an id. Upper-case hex is accepted (as upstream does) and stored in
            /// lower case, so two spellings of one id compare equal.
            pub fn parse(value: &str) -> Result<Self, InvalidValue> {
                let hex = value.strip_prefix(Self::PREFIX).ok_or_else(|| {
                    InvalidValue::new($kind, value, concat!("must start with `", $prefix, "`"))
                })?;
                if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(InvalidValue::new(
                        $kind,
                        value,
                        concat!("must be `", $prefix, "` followed by exactly 32 hex digits"),
                    ));
                }
                Ok(Self(format!("{}{}", Self::PREFIX, hex.to_ascii_lowercase())))
            }

            /// The whole id, e.g. `host-00112233445566778899aabbccddeeff`.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The 32 hex digits without the prefix (upstream's `get_uuid().hex`).
            pub fn hex(&self) -> &str {
                &self.0[Self::PREFIX.len()..]
            }
        }

        crate::macros::string_newtype_impls!($name);
    };
}

random_id!(
    /// The id of a host: `host-` followed by 32 lowercase hex digits.
    ///
    /// ```
    /// use vps_primitives::HostId;
    /// let id = HostId::generate();
    /// assert!(id.as_str().starts_with("host-"));
    /// assert_eq!(HostId::parse(id.as_str()), Ok(id));
    /// assert!(HostId::parse("host-xyz").is_err());
    /// ```
    HostId,
    "host-",
    "host id"
);

random_id!(
    /// The id of an agent on a host: `agent-` followed by 32 lowercase hex digits.
    AgentId,
    "agent-",
    "agent id"
);
