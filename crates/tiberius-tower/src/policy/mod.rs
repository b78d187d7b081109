//! The policy: what to do after each attempt.
//!
//! [`ConnectPolicy`] is the configuration, cloned into every service and
//! sharing the [`RetryBudget`] and the [`EndpointMemory`]. For each logical
//! connect the service makes a `Plan` from it (in `plan.rs`), the one place
//! that decides; every attempt's [`Attempt`] record carries the [`Decision`]
//! taken after it.

mod attempt;
mod budget;
mod config;
mod decision;
mod memory;
pub(crate) mod plan;

pub use attempt::Attempt;
pub use budget::RetryBudget;
pub use config::ConnectPolicy;
pub use decision::{Decision, StopReason};
pub use memory::EndpointMemory;
