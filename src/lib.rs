//! spinlift
