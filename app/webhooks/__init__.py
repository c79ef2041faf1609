"""Webhooks: a project tells other systems what happened (snapshot ready, run finished, …) by signed POSTs."""
