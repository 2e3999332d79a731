//! spinlift-emulator
