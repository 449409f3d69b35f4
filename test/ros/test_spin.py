"""The executors our nodes can be spun with dispatch what the recorder relies on.

Timers, services and QoS event callbacks, each under rclpy's SingleThreadedExecutor and its
EventsExecutor (``demo_recorder``'s ``executor`` parameter), over DDS on this test's domain.
"""
import time

import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import Trigger

from il_policy_node.ros.spin import make_executor

try:  # Jazzy and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks


@pytest.mark.parametrize('kind', ['single', 'events'])
def test_timers_services_and_qos_events_are_dispatched(ros_domain, kind):
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_domain)
    seen = {'ticks': 0, 'calls': 0, 'incompatible': 0}
    try:
        node = rclpy.create_node('spun', context=context)
        other = rclpy.create_node('other', context=context)
        node.create_timer(0.05, lambda: seen.__setitem__('ticks', seen['ticks'] + 1))

        def answer(request, response):
            seen['calls'] += 1
            response.success = True
            return response
        node.create_service(Trigger, '~/poke', answer)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        best_effort = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        callbacks = SubscriptionEventCallbacks(
            incompatible_qos=lambda info: seen.__setitem__('incompatible', 1))
        node.create_subscription(String, 'chatter', lambda m: None, reliable,
                                 event_callbacks=callbacks)
        other.create_publisher(String, 'chatter', best_effort)   # offers less: incompatible
        client = other.create_client(Trigger, '/spun/poke')
        executor = make_executor(kind, node)
        executor.add_node(node)
        executor.add_node(other)
        future = None
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and not (future and future.done() and
                                                   seen['incompatible'] and seen['ticks'] > 3):
            if future is None and client.service_is_ready():
                future = client.call_async(Trigger.Request())
            executor.spin_once(timeout_sec=0.05)
        executor.shutdown()
        assert future is not None and future.done() and future.result().success
        assert seen['calls'] == 1 and seen['ticks'] > 3 and seen['incompatible'] == 1, seen
    finally:
        rclpy.try_shutdown(context=context)
