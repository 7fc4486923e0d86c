//! A client-go compatible workqueue with rate limiters.
