//! order_storage
