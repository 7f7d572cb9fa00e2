//! Actors: the long-lived processes of a scenario, each in its own set of namespaces.
//!
//! [`plan`] decides how an actor is made, [`setup`] carries a plan out through a syscall
//! seam that [`kernel`] implements, [`spawn`] forks the actor, [`agent`] is the loop it then
//! runs, and [`protocol`] is how the orchestrator talks to it.

pub(crate) mod agent;
pub(crate) mod kernel;
pub(crate) mod plan;
pub(crate) mod protocol;
pub(crate) mod setup;
pub(crate) mod spawn;
