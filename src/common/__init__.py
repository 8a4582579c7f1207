"""What allim's services share: settings, database models, topics, events, tokens."""
