mod api;
mod issuance;
mod keys;
mod keystore;
mod support;
