//! local

pub mod asl;
