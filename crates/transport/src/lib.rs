//! spinlift-transport
