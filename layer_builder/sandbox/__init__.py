"""The sandbox: moto's server on loopback for AWS, and the stand-in extension with its registry."""
