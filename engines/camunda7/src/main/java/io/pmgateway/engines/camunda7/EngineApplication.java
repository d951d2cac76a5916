package io.pmgateway.engines.camunda7;

import org.camunda.bpm.engine.rest.security.auth.ProcessEngineAuthenticationFilter;
import org.camunda.bpm.engine.rest.security.auth.impl.HttpBasicAuthenticationProvider;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.autoconfigure.condition.ConditionalOnProperty;
import org.springframework.boot.web.servlet.FilterRegistrationBean;
import org.springframework.context.annotation.Bean;

/** Camunda 7 with its REST API at /engine-rest, for pm-gateway's real-engine tests and `make engine-camunda7`. */
@SpringBootApplication
public class EngineApplication {
  public static void main(String[] args) {
    SpringApplication.run(EngineApplication.class, args);
  }

  /** Basic auth on /engine-rest (user demo/demo) when PM_ENGINE_BASIC_AUTH=true. */
  @Bean
  @ConditionalOnProperty(name = "pm.engine.basic-auth", havingValue = "true")
  FilterRegistrationBean<ProcessEngineAuthenticationFilter> basicAuth() {
    FilterRegistrationBean<ProcessEngineAuthenticationFilter> registration =
        new FilterRegistrationBean<>(new ProcessEngineAuthenticationFilter());
    registration.addInitParameter("authentication-provider", HttpBasicAuthenticationProvider.class.getName());
    registration.addUrlPatterns("/engine-rest/*");
    return registration;
  }
}
