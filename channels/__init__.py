"""Channel connectors for Kefu (REST with input validation, web chat, agent console)."""
