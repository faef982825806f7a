//! Zygote-style reverse-mode AD for difi: every primitive returns its value and a pullback closure.
