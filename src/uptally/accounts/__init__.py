"""Operator accounts: users with roles, passwords, sessions, second factors, single sign-on."""
