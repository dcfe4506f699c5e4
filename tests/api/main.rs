//! Black-box tests of the whole API, through HTTP requests to the routers.

mod auth;
mod chat;
mod conversations;
mod events;
mod limits;
mod providers;
mod routes;
mod service;
mod users;
