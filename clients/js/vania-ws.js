// The browser client arrives in the next commit.
export {};
