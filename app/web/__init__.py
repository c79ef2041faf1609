"""The web app's frame around the domains: middleware, error responses, warm-up and its own few routes."""
