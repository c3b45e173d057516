mod api;
mod issuance;
mod keys;
mod keystore;
mod sigstore_python;
mod support;
