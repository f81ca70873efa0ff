//! One module per page.

pub(crate) mod audit;
pub(crate) mod chart;
pub(crate) mod clients;
pub(crate) mod dashboard;
pub(crate) mod login;
pub(crate) mod tokens;
pub(crate) mod users;
