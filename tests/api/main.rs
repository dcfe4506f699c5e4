//! Black-box tests of the whole API, through HTTP requests to the routers.

mod agent;
mod attachments;
mod auth;
mod chat;
mod conversations;
mod events;
mod functions;
mod limits;
mod modules;
mod projects;
mod providers;
mod remote_store;
mod service;
mod template;
mod users;
