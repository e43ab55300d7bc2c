//! fulfill_order
