//! Label and field selectors, parsed with the grammar and error messages of
//! k8s.io/apimachinery: pkg/labels (`labels.Parse`, selector.go) and pkg/fields.
//!
//! # Guarantees
//! * The label selector parser is the simulator's own, written after
//!   apimachinery's lexer and recursive-descent parser (tokens, the `in`/`notin`
//!   keywords read as identifiers wherever a value or key is expected, the
//!   `()` set holding the empty value) and its key and value validation (a key
//!   is an optional lowercase DNS-subdomain prefix and `/` plus a name of at
//!   most 63 bytes; a value is empty or such a name). It shares no code with
//!   the engine it serves, so the two check each other
//!   (`loadgen/tests/sim_selector_agrees.rs`).
//! * A selector that does not parse is a 400 BadRequest whose message is the
//!   real server's: `unable to parse requirement: …` for a requirement that
//!   fails, the parser's bare message for a misplaced `,`.
//! * `!=` and `notin` match objects without the key; `>` and `<` match only
//!   labels whose value is a decimal integer.

mod field;
mod label;
mod parse;
mod shard;
mod shard_cel;
mod validate;

pub use field::{FieldSelector, FieldValues};
pub use label::LabelSelector;
pub use shard::{ShardField, ShardRange, ShardSelector, fnv1a64};
