//! How a suite runs on both front ends: `on_both_front_ends!("suites/x.rs")` includes it
//! twice, in a module per front end, each with its own `start` and `start_with`.

/// Includes `$suite` (a path from the test file) once behind the standalone server and once
/// behind axum.
macro_rules! on_both_front_ends {
    ($suite:literal) => {
        mod standalone {
            const FRONT_END: vania_ws::testing::FrontEnd = vania_ws::testing::FrontEnd::Standalone;
            $crate::front_end::starters!();
            include!($suite);
        }

        mod axum {
            const FRONT_END: vania_ws::testing::FrontEnd = vania_ws::testing::FrontEnd::Axum;
            $crate::front_end::starters!();
            include!($suite);
        }
    };
}
pub(crate) use on_both_front_ends;

/// Defines `start(router)` and `start_with(router, config)` for the including module.
macro_rules! starters {
    () => {
        #[allow(dead_code)]
        async fn start(router: vania_ws::Router) -> vania_ws::testing::TestServer {
            start_with(router, vania_ws::ServerConfig::default()).await
        }

        #[allow(dead_code)]
        async fn start_with(
            router: vania_ws::Router,
            config: vania_ws::ServerConfig,
        ) -> vania_ws::testing::TestServer {
            vania_ws::testing::TestServer::start_on(FRONT_END, router, config).await
        }
    };
}
pub(crate) use starters;
