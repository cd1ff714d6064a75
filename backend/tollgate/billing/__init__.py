"""What is owed: open invoice lines and pending payments, settled by the payment providers."""
