"""Provider adapters behind one interface (`providers.base.Provider`)."""
