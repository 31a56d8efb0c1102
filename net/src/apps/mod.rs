//! The applications Skiff serves: TCP echo and HTTP. Their sockets' set-up
//! and upkeep are `crate::sockets`'.

pub mod echo;
pub mod http;
