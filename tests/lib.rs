//! Test support lives in integration/.
