"""Services: what handlers call. Each owns no state beyond its dependencies."""
