//! The decoders under fuzz (see `decoders`), shared by the libFuzzer targets.
pub mod decoders;
