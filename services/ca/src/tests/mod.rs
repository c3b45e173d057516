mod issuance;
mod keys;
mod support;
