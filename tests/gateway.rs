//! Integration tests: the real proxy in-process on port 0, in front of test upstreams.

mod support;

mod account_rules;
mod admin;
mod bad_input;
mod bench_report;
mod bounds;
mod browser;
mod ceremony_rules;
mod cli;
mod connections;
mod crash;
mod events;
mod expiry;
mod forward_auth;
mod forward_auth_proxies;
mod fuzz_corpus;
mod http2;
mod identity;
mod operations;
mod passkeys;
mod policy;
mod proxying;
mod real_server;
mod reload;
mod replicas;
mod replicas_load;
mod request_rules;
mod revocation;
mod self_service;
mod service_manager;
mod tls_reload;
mod webhooks;
