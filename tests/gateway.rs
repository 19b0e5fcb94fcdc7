//! Integration tests: the real proxy in-process on port 0, in front of test upstreams.

mod support;

mod bad_input;
mod passkeys;
mod proxying;
mod real_server;
