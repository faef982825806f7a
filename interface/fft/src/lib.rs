//! Custom rules on rustfft for difi: FFT convolution whose pullback computes only the cotangents asked for.
