//! dlq_handler
