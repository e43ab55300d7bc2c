//! api_handler
