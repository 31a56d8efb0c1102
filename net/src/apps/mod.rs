//! The applications Skiff serves: TCP echo and HTTP.

pub mod echo;
pub mod http;
