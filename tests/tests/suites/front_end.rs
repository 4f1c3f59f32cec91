//! How a suite starts its server: `start` and `start_with`, behind the front end (`FRONT_END`)
//! of the module that includes the suite.

pub(crate) use vania_ws_server::testing::FrontEnd;

/// Defines `start(router)` and `start_with(router, config)` for the including module.
macro_rules! starters {
    () => {
        #[allow(dead_code)]
        async fn start(router: vania_ws_server::Router) -> vania_ws_server::testing::TestServer {
            start_with(router, vania_ws_server::ServerConfig::default()).await
        }

        #[allow(dead_code)]
        async fn start_with(
            router: vania_ws_server::Router,
            config: vania_ws_server::ServerConfig,
        ) -> vania_ws_server::testing::TestServer {
            vania_ws_server::testing::TestServer::start_on(FRONT_END, router, config).await
        }
    };
}
pub(crate) use starters;
