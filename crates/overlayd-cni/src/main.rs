//! The `overlayd-cni` binary: a CNI plugin that is a thin client of the
//! overlayd daemon (see the library for everything it does).

fn main() {
    overlayd_cni::plugin_main()
}
