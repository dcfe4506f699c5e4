//! Black-box tests of the whole API, through HTTP requests to the routers.

mod admin;
mod agent;
mod agents;
mod api_keys;
mod attachments;
mod auth;
mod chat;
mod conversations;
mod events;
mod functions;
mod iam;
mod knowledge;
mod limits;
mod modules;
mod openai;
mod projects;
mod providers;
mod quotas;
mod remote_store;
mod runtime_api;
mod service;
mod static_functions;
mod template;
mod users;
mod web;
mod ws;
