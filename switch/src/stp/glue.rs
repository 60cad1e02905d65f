//! Between the state machine and the switch (filled in below).
