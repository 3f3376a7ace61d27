"""The studies (rank 4), each in its own folder."""
