//! Scenario files: the format ([`model`]), reading them with positions ([`load`]) and the
//! checks that go beyond the format's types ([`validate`]).

pub(crate) mod load;
pub(crate) mod model;
pub(crate) mod validate;

pub(crate) use load::{line_column, load_file, load_str, LoadError, LoadedScenario};
