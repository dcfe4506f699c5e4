//! Black-box tests of the whole API, through HTTP requests to the routers.

mod admin;
mod admin_models;
mod agent;
mod agents;
mod api_keys;
mod attachments;
mod auth;
mod branches;
mod chat;
mod conversations;
mod events;
mod fallbacks;

mod functions;
mod history;
mod iam;
mod knowledge;
mod limits;
mod models_runtime;
mod modules;
mod openai;
mod projects;
mod providers;
mod quotas;
mod remote_store;
mod runtime_api;
mod service;
mod shares;
mod static_functions;
mod storage;
mod template;
mod users;
mod web;
mod ws;
