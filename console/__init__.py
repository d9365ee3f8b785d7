"""The operations-centre console (``cityorder console``): live board, cases, actions, audit."""
