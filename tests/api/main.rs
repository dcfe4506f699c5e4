//! Black-box tests of the whole API, through HTTP requests to the routers.

mod auth;
mod events;
mod limits;
mod routes;
mod service;
mod users;
